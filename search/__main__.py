from mtlsearch.cli import main

main()

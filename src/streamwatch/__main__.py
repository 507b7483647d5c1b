from streamwatch.cli import main

main()

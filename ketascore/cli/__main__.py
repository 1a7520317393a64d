from ketascore.cli import main

main()

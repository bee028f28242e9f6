from temshift.cli import main

main()

from services.operations.cli import main

main()

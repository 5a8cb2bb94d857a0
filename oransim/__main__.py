from oransim.cli import main

main()

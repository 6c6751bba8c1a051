from claudematrix.cli import main

main()

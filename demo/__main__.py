from demo.run_demo import main

main()

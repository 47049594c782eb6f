from facevae.bench import main

main()

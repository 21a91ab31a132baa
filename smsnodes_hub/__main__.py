from smsnodes_hub.cli.main import main

raise SystemExit(main())

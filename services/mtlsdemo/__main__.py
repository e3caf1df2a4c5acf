from mtlsdemo.cli import main

raise SystemExit(main())

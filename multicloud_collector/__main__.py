from multicloud_collector.cli import main

raise SystemExit(main())

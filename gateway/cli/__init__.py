"""The command line: `tonne` and its commands (serve, demo, load, accounts, custody, log,
recover, journal, bench). The only place that reads the wall clock, the environment and
argv; everything below it takes them as arguments."""

"""The command line: one thin module per subcommand over the stage libraries."""

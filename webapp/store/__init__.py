"""The only place SQL lives. Each function runs one statement on the connection it is given."""

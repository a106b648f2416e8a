"""PySide6 views over the core. No business logic here: panels call core functions and run
long jobs in workers."""

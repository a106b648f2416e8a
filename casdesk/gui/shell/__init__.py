"""The application shell: the app, the main window, settings, shortcuts, about, crash dialog."""

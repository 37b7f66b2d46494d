"""The web page's static files (index.html, app.css, app.js), served by api/ui.py at /emulator/ui/."""

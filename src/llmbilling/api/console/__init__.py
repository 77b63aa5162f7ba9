"""The web console: server-rendered pages at ``/console`` over the service layer."""

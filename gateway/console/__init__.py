"""The operator's side of a running server (issue 16): the console in the browser, its JSON
endpoints and `/metrics`, served by aiohttp on the server's own event loop
(`tonne serve --http-port N`). gateway/console/app.py is the HTTP part, metrics.py what the
server counts and how Prometheus reads it, records.py the settlement log as the console
pages and filters it."""

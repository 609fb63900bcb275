"""Local fakes of provider APIs (aiohttp apps on 127.0.0.1) and the server that runs them."""

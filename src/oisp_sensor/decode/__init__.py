"""Sans-IO decoding: bytes in, HTTP messages and OISP events out. No sockets, threads or clocks."""

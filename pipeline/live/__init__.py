"""``samtrack live``: track a camera, a network stream or a file played as one, steered from a
local web page (stream, session, server)."""

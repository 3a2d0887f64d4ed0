"""Before a run: the endpoints found and checked, each server's dialect probed. Nothing here
runs while LoadGen does (measure/ is that path)."""

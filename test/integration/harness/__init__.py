# Integration test harness for mod_acme: real pebble, pebble-challtestsrv and
# Debian's apache2 on loopback ports, driven from pytest fixtures (conftest.py).

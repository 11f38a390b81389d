"""Field I/O: device profiles, Modbus polling, secure command frames, command dispatch, scheduling."""

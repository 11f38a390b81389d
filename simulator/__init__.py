"""A field of simulated gateways, buses and meters speaking real Modbus on loopback.

- site.py: MeterSpec / BusSpec / GatewaySpec / SiteSpec, demo_site(), scale_site(), get_site()
- field.py: Field (the running field, faults, persistence), run_field_in_thread() / FieldThread
- meters.py: the device models and their register maps (prepaid meters, master meter, area terminal)
- modbus.py: the per-bus Modbus server (Modbus TCP and RTU over TCP)
- secure.py: the secure command frame, meter side; tariff.py, load.py: tariffs and load shapes
- timing.py: RS485 frame and transaction times; history.py: backfill(); cli.py: `app.py simulate`
"""

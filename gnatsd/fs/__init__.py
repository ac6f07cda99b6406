"""JetStream message stores (DESIGN.md §4): `store` (the interface, shared types and logic),
`memstore` and `filestore`. Ports nats-server `server/store.go`, `memstore.go`, `filestore.go`."""

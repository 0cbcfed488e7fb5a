"""Everything that knows a CRM: one package per CRM behind the adapter registry, and the
parts they share (change types, mapping to canonical events, HTTP, signatures)."""

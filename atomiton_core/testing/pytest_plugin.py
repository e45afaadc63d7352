"""pytest plugin of the testing kit (fixtures arrive with the kit)."""

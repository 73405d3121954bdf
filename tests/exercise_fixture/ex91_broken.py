"""A fixture whose check is broken."""

print("hi")

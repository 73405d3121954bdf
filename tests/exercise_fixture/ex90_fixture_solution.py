"""The fixture's starter already solves it: the tests edit it into wrong answers."""

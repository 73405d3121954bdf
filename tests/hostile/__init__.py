"""Hostile samples: each test is one attack a reader's edited code could try.

Every test asserts that the attack is contained and that the next ordinary run
still works on pristine data. Where containment rests on a layer the launcher in
force says it lacks (`Runtime.launcher.missing`), a breach is reported as an
expected failure naming that layer; with the layer in force it is a failure.
"""

"""The realserver role (LVS-DR real server) on the shared Molecule Docker platform."""


def test_realserver_scenario(molecule_test):
    out = molecule_test("realserver")
    assert "realserver > check: Executed: Successful" in out, out[-3000:]
    assert "REALSERVER VERIFY OK" in out, out[-3000:]
    assert "second absent: changed=0" in out, out[-3000:]

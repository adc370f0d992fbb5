"""The cosyvoice_node role with the espeak-ng CPU test engine on the shared Molecule Docker platform."""


def test_cosyvoice_node_scenario(molecule_test):
    out = molecule_test("cosyvoice_node")
    assert "COSYVOICE_NODE VERIFY OK" in out, out[-3000:]

"""cosyvoice_node's CosyVoice path without a GPU: pinned checkout with a submodule through insteadOf,
requirements without the extra index lines, the model copied with rsync; idempotent."""


def test_cosyvoice_node_checkout_scenario(molecule_test):
    out = molecule_test("cosyvoice_node_checkout")
    assert "COSYVOICE CHECKOUT VERIFY OK" in out, out[-3000:]

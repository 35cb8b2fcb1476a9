import pytest

from edge.keys import GatewayIdentity, KeyFileError, key_id, load_public_key_b64, public_key_b64


def test_private_key_file_is_private_and_reloads(tmp_path):
    path = tmp_path / "gw.key"
    made = GatewayIdentity.create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert GatewayIdentity.load(path).kid == made.kid


def test_existing_key_is_never_overwritten(tmp_path):
    path = tmp_path / "gw.key"
    GatewayIdentity.create(path)
    with pytest.raises(KeyFileError, match="refusing"):
        GatewayIdentity.create(path)


def test_key_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "gw.key"
    GatewayIdentity.create(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="expected 600"):
        GatewayIdentity.load(path)


def test_kid_is_the_rfc7638_thumbprint():
    # RFC 8037 appendix A.3: thumbprint of the Ed25519 example key.
    key = load_public_key_b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    assert public_key_b64(key) == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert key_id(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

"""Bad configs and presets fail with one-line errors naming the field; `pac models` works."""

import json

import pytest

from models import PRESET_NAMES, PACConfig, get_preset, make_networks
from pac import cli


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(width=50, num_heads=4), "num_heads"),
        (dict(num_latents=0), "num_latents"),
        (dict(num_blocks=-1), "num_blocks"),
        (dict(token_width=0), "token_width"),
        (dict(max_action_dim=0), "max_action_dim"),
        (dict(num_action_bins=1), "num_action_bins"),
        (dict(v_min=5.0, v_max=5.0), "v_min"),
        (dict(compute_dtype="float16"), "compute_dtype"),
        (dict(obs_value_embedding="table"), "obs_value_embedding"),
        (dict(use_images=True, image_size=30, image_patch_size=4), "image_size"),
    ],
)
def test_bad_config_raises_one_line_error_naming_the_field(overrides, field):
    with pytest.raises(ValueError) as err:
        PACConfig(**overrides).validate()
    assert field in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match=field):
        make_networks(PACConfig(**overrides))


def test_default_config_and_every_preset_are_valid():
    PACConfig().validate()
    for name in PRESET_NAMES:
        config = get_preset(name)
        assert config.width % config.num_heads == 0


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_preset("huge")
    message = str(err.value)
    assert "'huge'" in message and "\n" not in message
    assert all(name in message for name in PRESET_NAMES)


def test_preset_overrides():
    config = get_preset("tiny", max_obs_dim=24, num_tasks=3, compute_dtype="bfloat16")
    assert (config.max_obs_dim, config.num_tasks, config.compute_dtype) == (24, 3, "bfloat16")
    with pytest.raises(ValueError, match="widht"):
        get_preset("tiny", widht=3)
    with pytest.raises(ValueError, match="num_latents"):
        get_preset("tiny", num_latents=0)


def test_pac_models_json_matches_counts(capsys):
    from harness.builder import learner_hyperparams
    from harness.config import TrainConfig
    from harness.update_passes import update_flops
    from models import counts

    assert cli.main(["models", "--presets", "tiny,250k", "--json", "--obs-dim", "24", "--action-dim", "6",
                     "--num-tasks", "3", "--batch-size", "64"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["preset"] for r in rows] == ["tiny", "250k"]
    config = get_preset("tiny", max_obs_dim=24, max_action_dim=6, num_tasks=3)
    assert rows[0]["params"] == counts.param_count(config)
    assert rows[0]["train_flops_per_update"] == update_flops(config, learner_hyperparams(TrainConfig(steps=1,
                                                                                                     batch_size=64)))


def test_pac_models_table_and_errors(capsys):
    assert cli.main(["models", "--presets", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "non-emb params" in out
    assert cli.main(["models", "--presets", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown model preset 'nope'" in err
    assert cli.main(["models", "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err

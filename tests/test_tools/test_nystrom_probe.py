"""tools/nystrom_probe.py: the context branch's share scales with the gate,
a zero gate has nothing to knock out or to make exact, and the knock-out
restores the gate."""
from __future__ import annotations

import os.path as osp

import pytest
import torch

from conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs', 'demo',
                  'nystrom_r18-tiny_1xb8-1k_demo-96x96.py')


@pytest.fixture(scope='module')
def checkpoints(demo_data_root, tmp_path_factory):
    """The demo Nystrom model (random weights) saved with gamma 0, 0.5, 1,
    each beside its config pointed at the test data."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import segreg  # noqa: F401
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(CONFIG)
    cfg.test_dataloader.dataset.data_root = demo_data_root
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    out = {}
    for gamma in (0.0, 0.5, 1.0):
        folder = tmp_path_factory.mktemp(f'gamma{gamma}')
        cfg.dump(str(folder / 'model.py'))
        with torch.no_grad():
            model.decode_head.gamma.fill_(gamma)
        path = str(folder / 'iter_1.pth')
        torch.save(dict(state_dict=model.state_dict(),
                        meta=dict(dataset_meta=None)), path)
        out[gamma] = path
    return out


def test_probe_share_knock_out_and_receptive_field(checkpoints, tools_on_path):
    import nystrom_probe
    rows = {r['gamma']: r for r in nystrom_probe.main(
        [checkpoints[g] for g in (0.0, 0.5, 1.0)] +
        ['--max-images', '3', '--rf-images', '1'])}
    assert set(rows) == {0.0, 0.5, 1.0}
    # a zero gate: no branch, and knocking it out changes nothing
    assert rows[0.0]['share'] == 0.0
    assert rows[0.0]['mIoU_knocked_out'] == rows[0.0]['mIoU']
    assert rows[0.0]['aAcc_knocked_out'] == rows[0.0]['aAcc']
    assert rows[0.0]['mIoU_exact_attention'] == rows[0.0]['mIoU']
    # the branch is gamma * attention(norm(y)): its share is linear in gamma
    assert rows[0.5]['share'] > 0
    assert rows[1.0]['share'] == pytest.approx(2 * rows[0.5]['share'],
                                               rel=1e-5)
    assert 0 < rows[1.0]['share_varying'] <= rows[1.0]['share']
    # knocked out, the gate-1 model is the gate-0 model
    assert rows[1.0]['mIoU_knocked_out'] == pytest.approx(rows[0.0]['mIoU'])
    for r in rows.values():
        assert 0 < r['rf_cover'] <= 1 and r['images'] == 3

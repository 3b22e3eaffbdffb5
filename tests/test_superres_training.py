"""Super-resolution end to end: `train --model sr [--adversarial]` and `python -m minigan.upscale`.

Runs use 24 synth images of 32x32, batch 4, and an SRResNet of width 4 with one block, so a step
takes a fraction of a second; the seed is fixed in each test.
"""
import json
import os

import numpy as np
import pytest
from PIL import Image

import minigan as mg
from minigan import checkpoint, runlog
from minigan import train as train_mod
from minigan import upscale as upscale_mod
from minigan.gan.sr_quality import bicubic_upscale, box_downscale, sr_quality
from minigan.gan.sr_trainer import downscale
from minigan.metrics import psnr


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('data'))


def tiny(data_dir, out, *extra):
    return ['--data', 'synth', '--data-dir', data_dir, '--subset', '24', '--batch-size', '4',
            '--sr-channels', '4', '--sr-blocks', '1', '--quiet', '--device', 'cpu', '--seed', '3',
            '--model', 'sr', '--out', str(out)] + [str(a) for a in extra]


def records(run_dir, kind=None):
    rs = runlog.read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
    return [r for r in rs if kind is None or r['type'] == kind]


@pytest.fixture(scope='module')
def feature_classifier(data_dir, tmp_path_factory):
    """A tiny classifier run whose classifier-32 gives the adversarial variant's feature loss."""
    out = tmp_path_factory.mktemp('clf') / 'run'
    args = ['--data', 'synth', '--data-dir', data_dir, '--subset', '24', '--batch-size', '4', '--quiet',
            '--device', 'cpu', '--model', 'classifier', '--max-steps', '2', '--out', str(out)]
    assert train_mod.main(args) == 0
    return str(out)


def test_downscaling_is_box_averaging_in_training_and_in_the_metrics():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8)
    low = box_downscale(images, 2)
    expect = images.reshape(2, 3, 4, 2, 4, 2).astype(float).mean(axis=(3, 5))
    np.testing.assert_array_equal(low, np.round(expect))
    x = mg.tensor(images.astype(np.float32) / 127.5 - 1)
    np.testing.assert_allclose(downscale(x, 2).numpy(), expect / 127.5 - 1, atol=1e-6)


def test_bicubic_is_pillows_rgb_resize():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 3, 8, 6), dtype=np.uint8)
    ours = bicubic_upscale(images, 4)
    for im, up in zip(images, ours):
        pil = Image.fromarray(im.transpose(1, 2, 0)).resize((24, 32), Image.BICUBIC)
        np.testing.assert_array_equal(up, np.asarray(pil).transpose(2, 0, 1))


def test_sr_quality_of_a_perfect_and_of_a_bilinear_upscaler():
    """An upscaler that returns bicubic's own answer scores bicubic's PSNR exactly."""
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 3, 16, 16), dtype=np.uint8)

    class Bicubic(mg.nn.Module):
        def forward(self, x):
            a = np.clip(np.round((x.numpy() + 1) * 127.5), 0, 255).astype(np.uint8)
            return mg.tensor(bicubic_upscale(a, 2).astype(np.float32) / 127.5 - 1)
    q = sr_quality(Bicubic(), images, 2)
    assert q['psnr'] == pytest.approx(q['psnr_bicubic']) and q['ssim'] == pytest.approx(q['ssim_bicubic'])
    bic = bicubic_upscale(box_downscale(images, 2), 2)
    assert q['psnr_bicubic'] == pytest.approx(float(np.mean(psnr(bic, images))))


@pytest.mark.parametrize('scale', [2, 4])
def test_sr_trains_and_reports_psnr_and_ssim_against_bicubic(scale, data_dir, tmp_path):
    out = tmp_path / 'run'
    assert train_mod.main(tiny(data_dir, out, '--scale', scale, '--epochs', '1')) == 0
    (ep,) = records(out, 'epoch')
    for k in ('psnr', 'ssim', 'psnr_bicubic', 'ssim_bicubic', 'loss', 'content'):
        assert np.isfinite(ep[k]), k
    assert 0 < ep['ssim_bicubic'] <= 1 and ep['psnr_bicubic'] > 10
    q = json.loads((out / 'quality.json').read_text())
    assert q['scale'] == scale and q['psnr'] == pytest.approx(ep['psnr'])    # the end is the epoch's end
    grid = Image.open(out / 'samples' / 'epoch_001.png')
    assert grid.size == (8 * 34 + 2, 3 * 34 + 2)                  # bicubic | minigan | original rows
    st = checkpoint.load(checkpoint.latest_path(str(out)))
    assert 'G' in st and 'D' not in st and st['model'] == 'sr'


def test_content_loss_falls_on_a_fixed_batch(data_dir, tmp_path):
    out = tmp_path / 'run'
    assert train_mod.main(tiny(data_dir, out, '--epochs', '3', '--lr', '1e-3', '--content-loss', 'mse')) == 0
    eps = records(out, 'epoch')
    assert eps[-1]['content'] < eps[0]['content']


@pytest.mark.parametrize('adversarial', [False, True])
def test_sr_resume_equals_a_straight_run(adversarial, data_dir, feature_classifier, tmp_path):
    from minigan import dispatch
    extra = ['--adversarial', '--feature-classifier', feature_classifier] if adversarial else []
    a, b = tmp_path / 'straight', tmp_path / 'resumed'
    common = ['--epochs', '2', '--checkpoint-every', '1000'] + extra
    with dispatch.conv_backend('numpy'):
        assert train_mod.main(tiny(data_dir, a, *common, '--max-steps', '8')) == 0
        assert train_mod.main(tiny(data_dir, b, *common, '--max-steps', '4')) == 0
        assert train_mod.main(['--resume', str(b), '--max-steps', '8', '--quiet']) == 0
    ra = [runlog.without_timing(r) for r in records(a)]
    rb = [runlog.without_timing(r) for r in records(b)]
    assert ra == rb and len(records(a, 'step')) == 8
    if adversarial:
        assert all(np.isfinite(r['loss_d']) and np.isfinite(r['feature']) for r in records(a, 'step'))
    sa = checkpoint.load(checkpoint.latest_path(str(a)))
    sb = checkpoint.load(checkpoint.latest_path(str(b)))
    for net in ('G', 'D') if adversarial else ('G',):
        for k in sa[net]:
            np.testing.assert_array_equal(sa[net][k], sb[net][k])


@pytest.mark.parametrize('args,expect', [(['--scale', '3'], "invalid choice: 3"),
                                         (['--adversarial', '--image-size', '64'], 'classifier-32'),
                                         (['--adversarial', '--feature-classifier', 'nowhere'], 'feature classifier')])
def test_sr_refuses_bad_settings_in_one_line(args, expect, data_dir, tmp_path, capsys):
    try:
        status = train_mod.main(tiny(data_dir, tmp_path / 'r', '--max-steps', '1', *args))
    except SystemExit as e:                      # argparse's own refusals
        status = e.code
    assert status == 2
    err = capsys.readouterr().err
    assert expect in err and 'Traceback' not in err and len(err.strip().splitlines()) == 1


def test_adversarial_is_only_for_sr(data_dir, tmp_path, capsys):
    args = [a if a != 'sr' else 'dcgan' for a in tiny(data_dir, tmp_path / 'r', '--adversarial')]
    assert train_mod.main(args) == 2
    assert '--adversarial is the SRGAN variant' in capsys.readouterr().err


def test_help_shows_the_new_flags_with_defaults(capsys):
    with pytest.raises(SystemExit):
        train_mod.main(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    for flag, default in (('--conditional', 'off'), ('--scale', '2'), ('--adversarial', 'off'),
                          ('--content-loss', 'l1'), ('--sr-channels', '32'), ('--sr-blocks', '4')):
        assert flag in text
        i = text.index(flag + ' ', text.index('options:'))
        assert f'(default: {default}' in text[i:i + 700], flag


# ---- python -m minigan.upscale ---------------------------------------------------------------------
@pytest.fixture(scope='module')
def sr_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp('sr') / 'run'
    assert train_mod.main(tiny(data_dir, out, '--max-steps', '2')) == 0
    return out


def test_upscale_a_picture_of_any_size_in_one_pass(sr_run, tmp_path):
    from minigan.gan.sr_quality import upscale
    from minigan.run_folder import load_upscaler
    rng = np.random.default_rng(0)
    pic = rng.integers(0, 256, (21, 37, 3), dtype=np.uint8)
    Image.fromarray(pic).save(tmp_path / 'in.png')
    out, sbs = tmp_path / 'out.png', tmp_path / 'sbs.png'
    assert upscale_mod.main([str(sr_run), '--input', str(tmp_path / 'in.png'), '--out', str(out),
                             '--side-by-side', str(sbs), '--device', 'cpu']) == 0
    got = np.asarray(Image.open(out))
    assert got.shape == (42, 74, 3) and Image.open(sbs).size == (2 * 74 + 8, 42)
    G, _ = load_upscaler(str(sr_run))
    np.testing.assert_array_equal(got, upscale(G, pic.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0))


def test_upscale_a_gan_runs_samples(sr_run, data_dir, tmp_path):
    gan = tmp_path / 'gan'
    args = ['--data', 'synth', '--data-dir', data_dir, '--subset', '24', '--batch-size', '4', '--nz', '8',
            '--ngf', '4', '--ndf', '4', '--quiet', '--device', 'cpu', '--max-steps', '1', '--out', str(gan)]
    assert train_mod.main(args) == 0
    out = tmp_path / 'up.png'
    assert upscale_mod.main([str(sr_run), '--input', str(gan), '--n', '16', '--out', str(out),
                             '--device', 'cpu']) == 0
    assert Image.open(out).size == (2 * (8 * 34 + 2), 2 * (2 * 34 + 2))


def test_upscale_errors_are_one_line(sr_run, tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / 'grey.png')
    (tmp_path / 'text.png').write_text('not a picture')
    cases = [([str(sr_run), '--input', str(tmp_path / 'grey.png')], 'picture of mode L'),
             ([str(sr_run), '--input', str(tmp_path / 'missing.png')], 'neither a picture file nor a run'),
             ([str(sr_run), '--input', str(tmp_path / 'text.png')], 'not a picture Pillow can read'),
             ([str(tmp_path), '--input', str(tmp_path / 'grey.png')], 'has no config.json')]
    for args, expect in cases:
        assert upscale_mod.main(args + ['--out', str(tmp_path / 'o.png'), '--device', 'cpu']) == 2
        err = capsys.readouterr().err
        assert expect in err and 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
    assert upscale_mod.main([str(sr_run), '--input', str(tmp_path / 'grey.png'), '--convert',
                             '--out', str(tmp_path / 'o.png'), '--device', 'cpu']) == 0
    assert Image.open(tmp_path / 'o.png').mode == 'RGB'


def test_sample_and_evaluate_refuse_an_sr_run_in_one_line(sr_run, capsys):
    from minigan import evaluate as evaluate_mod
    from minigan import sample as sample_mod
    assert sample_mod.main([str(sr_run), '--device', 'cpu']) == 2
    assert 'is a super-resolution run: it has no generator' in capsys.readouterr().err
    assert evaluate_mod.main([str(sr_run), '--n', '10']) == 2
    assert 'quality.json' in capsys.readouterr().err

"""The deployed PFDN reproduces the released weights' published Set5 x4 figures."""
from pfdn_arch.files.checkpoints import build_from_checkpoint
from pfdn_arch.evaluation.protocol import evaluate_folder


def test_set5_x4_matches_the_published_figures(weights, set5_hr):
    net, _ = build_from_checkpoint(weights)
    net.eval()
    r = evaluate_folder(net, set5_hr, scale=4)
    assert r['n'] == 5
    assert abs(r['psnr'] - 32.04) < 0.005, r
    assert abs(r['ssim'] - 0.8932) < 0.0005, r


def test_bicubic_reference_row(set5_hr):
    r = evaluate_folder(None, set5_hr, scale=4, bicubic=True)
    assert abs(r['psnr'] - 28.43) < 0.005 and abs(r['ssim'] - 0.8113) < 0.0005, r

from spandrel import MAIN_REGISTRY, ModelLoader
from spandrel.architectures.PFDN import PFDN, PFDNArch

from .util import (
    ModelFile,
    TestImage,
    assert_image_inference,
    assert_loads_correctly,
    assert_size_requirements,
    disallowed_props,
    skip_if_unchanged,
)

skip_if_unchanged(__file__)

OFFICIAL = "https://github.com/icandle/PFDN/raw/main/model_zoo/team08_PFDN.pth"


def test_load():
    assert_loads_correctly(
        PFDNArch(),
        lambda: PFDN(),
        lambda: PFDN(num_in_ch=1, num_out_ch=1),
        lambda: PFDN(num_in_ch=4, num_out_ch=4),
        lambda: PFDN(num_in_ch=1, num_out_ch=3),
        lambda: PFDN(num_feat=32, num_partial_feat=16),
        lambda: PFDN(num_feat=64, num_partial_feat=48),
        lambda: PFDN(num_partial_feat=48),
        lambda: PFDN(num_block=1),
        lambda: PFDN(num_block=6),
        lambda: PFDN(num_block=12),
        lambda: PFDN(esa_channels=8),
        lambda: PFDN(esa_channels=32),
        lambda: PFDN(upscale=1),
        lambda: PFDN(upscale=2),
        lambda: PFDN(upscale=3),
        lambda: PFDN(upscale=8),
    )


def test_detected_by_PFDN_alone():
    for model in [
        PFDN(),
        PFDN(upscale=2, num_block=2),
        PFDN(num_in_ch=1, num_out_ch=1, num_feat=32, num_partial_feat=16),
    ]:
        state_dict = model.state_dict()
        claimed = [
            support.architecture.id
            for support in MAIN_REGISTRY.architectures("detection")
            if support.detect(state_dict)
        ]
        assert claimed == ["PFDN"]
        assert ModelLoader().load_from_state_dict(state_dict).architecture.id == "PFDN"


def test_size_requirements():
    file = ModelFile.from_url(OFFICIAL)
    assert_size_requirements(file.load_model())


def test_PFDN_x4(snapshot):
    file = ModelFile.from_url(OFFICIAL)
    model = file.load_model()
    assert model == snapshot(exclude=disallowed_props)
    assert isinstance(model.model, PFDN)
    assert_image_inference(
        file,
        model,
        [TestImage.SR_16, TestImage.SR_32, TestImage.SR_64],
    )

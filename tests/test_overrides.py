"""How an override's text becomes a value (``recipe/overrides.py``), directly: by the key table where it knows the
key, else by the type of the yml's own value; a value of the wrong kind is one OptionsError naming the key."""
import pytest

from pfdn_arch.errors import OptionsError
from pfdn_arch.recipe.overrides import kind_of, override_value, typed_value


@pytest.mark.parametrize('text, current, value', [
    ('3', 1, 3), ('0.5', 0, 0.5), ('2', 0.1, 2.0), ('5e3', 100, 5000),  # a number stays a number; 0 widens
    ('false', True, False), ('[1, 2]', [4], [1, 2]), ('~', [4], None),
    ('007', 'abc', '007'), (' a b ', 'x', 'a b'), ('~', 'x', None),  # a string is the text as typed
    ('12', None, 12), ('true', None, True),  # an empty yml key: as BasicSR reads it
    ('~', {'a': 1}, None),  # a section cleared
])
def test_a_key_the_table_does_not_know_takes_the_type_of_the_yml_value(text, current, value):
    got = typed_value(text, current)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize('text, current, says', [
    ('abc', 1, 'needs a number'), ('1', True, 'needs true or false'), ('3', [1], 'needs a list'),
    ('1', {'a': 1}, 'that is a section'),
])
def test_a_value_of_another_type_than_the_yml_value_is_refused(text, current, says):
    with pytest.raises(OptionsError) as err:
        typed_value(text, current, 'force_yml')
    assert err.value.path == 'force_yml' and says in err.value.reason and repr(current) in err.value.reason


@pytest.mark.parametrize('keys, text, value', [
    ('train:total_iter', '5e3', 5000), ('num_gpu', 'auto', 'auto'), ('num_gpu', '0', 0),
    ('name', '2024', '2024'),  # a name typed as digits is the name, not a number
    ('datasets:train:use_hflip', 'false', False), ('train:scheduler:milestones', '[10, 20]', [10, 20]),
    ('val:dtype', 'bf16', 'bf16'), ('path:pretrain_network_g', '~', None),
])
def test_a_key_the_table_knows_takes_its_kind(keys, text, value):
    assert kind_of(keys) is not None
    assert override_value(keys, text, None, 'force_yml') == value


@pytest.mark.parametrize('keys, text', [
    ('train:total_iter', '0'), ('train:total_iter', '1.5'), ('num_gpu', 'many'), ('val:dtype', 'int4'),
    ('train:ema_decay', '1'), ('datasets:train:use_hflip', 'yes please'), ('scale', '9'),
])
def test_a_value_the_table_refuses_is_one_error_naming_the_key(keys, text):
    with pytest.raises(OptionsError) as err:
        override_value(keys, text, None, 'force_yml')
    assert err.value.path == 'force_yml' and keys.replace(':', '.') in err.value.reason
    assert 'takes' in err.value.reason


def test_keys_outside_the_table_have_no_kind():
    assert kind_of('network_g:num_feat') is None and kind_of('train:pixel_opt:reduction') is None
    assert kind_of('network_g:type') is not None and kind_of('network_t:deploy') is not None

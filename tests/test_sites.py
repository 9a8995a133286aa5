"""Simulated sites: patient-disjoint, deterministic, each change visible, each share as claimed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.sites import (
    COURSE_SITES,
    SiteSpec,
    acquire,
    burn_marker,
    join,
    make_sites,
    marker_mask,
    partition_patients,
    prevalence_index,
    site_seed,
    site_table,
    take_patients,
)
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.errors import DataError


@pytest.fixture(scope="module")
def pool() -> ImageSet:
    return make_synthetic(400, size=32, seed=3)


@pytest.fixture(scope="module")
def sites(pool):
    return make_sites(pool, COURSE_SITES, seed=0)


def edges(images: torch.Tensor) -> float:
    """Mean absolute difference between horizontal neighbours: fine detail and noise."""
    x = images.float()
    return float((x[..., 1:] - x[..., :-1]).abs().mean())


def test_own_sites_are_patient_disjoint_and_cover_no_patient_twice(sites):
    own = [s for s in sites.values() if s.spec.patients_of is None]
    seen: dict[str, str] = {}
    for site in own:
        for patient in set(site.data.patients):
            assert patient not in seen, f"{patient} in {seen.get(patient)} and {site.name}"
            seen[patient] = site.name
    assert len(own) == len(COURSE_SITES) - 1


def test_the_shortcut_source_shows_the_source_children_again(sites):
    assert sites["shortcut source"].data.patients == sites["source"].data.patients
    assert torch.equal(sites["shortcut source"].data.labels, sites["source"].data.labels)


def test_sites_are_deterministic_by_seed(pool, sites):
    again = make_sites(pool, COURSE_SITES, seed=0)
    other = make_sites(pool, COURSE_SITES, seed=1)
    for name, site in sites.items():
        assert torch.equal(site.data.images, again[name].data.images), name
        assert torch.equal(site.marked, again[name].marked), name
    assert sites["source"].data.patients != other["source"].data.patients


def test_a_site_without_change_keeps_the_pool_images(pool, sites):
    source = sites["source"].data
    index = [i for i, p in enumerate(pool.patients) if p in set(source.patients)]
    assert torch.equal(pool.images[index], source.images)
    assert sites["source"].description == "no change"


def test_weights_set_the_shares_of_the_pool(pool):
    parts = partition_patients(pool, [3.0, 1.0], seed=0)
    assert len(parts[0]) + len(parts[1]) == len(pool)
    assert set(parts[0]).isdisjoint(parts[1])
    # whole patients of at most 3 images: each class's share is off by less than a few images
    assert abs(len(parts[0]) / len(pool) - 0.75) < 0.03


def test_partition_refuses_bad_weights(pool):
    with pytest.raises(ValueError, match="weights must be positive"):
        partition_patients(pool, [1.0, 0.0])


def test_each_change_is_visible_in_pixel_statistics(pool):
    images = pool.images[:64]
    none = torch.zeros(len(images), dtype=torch.bool)
    plain = acquire(images, SiteSpec("plain"), none)
    assert torch.equal(plain, images)
    brighter = acquire(images, SiteSpec("e", gamma=0.5), none)
    assert brighter.float().mean() > images.float().mean() + 20
    darker = acquire(images, SiteSpec("d", gamma=2.0), none)
    assert darker.float().mean() < images.float().mean() - 20
    blurred = acquire(images, SiteSpec("b", blur=0.05), none)
    assert edges(blurred) < 0.7 * edges(images)
    assert abs(blurred.float().mean() - images.float().mean()) < 3  # blur keeps the exposure
    noisy = acquire(images, SiteSpec("n", noise=25.0), none)
    assert edges(noisy) > edges(images) + 10
    residual = noisy.float() - images.float()
    assert 18 < float(residual.std()) < 26  # sd 25, a little less where 0 and 255 clip it
    low = acquire(images, SiteSpec("r", resolution=0.25), none)
    assert edges(low) < 0.8 * edges(images) and low.shape == images.shape


def test_noise_is_deterministic_by_site_and_seed(pool):
    images = pool.images[:8]
    none = torch.zeros(8, dtype=torch.bool)
    first = acquire(images, SiteSpec("n", noise=10.0), none, seed=0)
    assert torch.equal(first, acquire(images, SiteSpec("n", noise=10.0), none, seed=0))
    assert not torch.equal(first, acquire(images, SiteSpec("m", noise=10.0), none, seed=0))
    assert not torch.equal(first, acquire(images, SiteSpec("n", noise=10.0), none, seed=1))
    assert site_seed(0, "n") == site_seed(0, "n") != site_seed(0, "m")


def test_the_marker_is_a_white_square_with_a_black_l_in_the_corner():
    images = torch.full((2, 1, 64, 64), 100, dtype=torch.uint8)
    marked = burn_marker(images)
    assert torch.equal(images, torch.full_like(images, 100))  # the input is left alone
    box = marked[0, 0, 4:12, 4:12]  # side 64 // 8 = 8 from 64 // 16 = 4
    assert int(box.max()) == 255 and int(box.min()) == 0
    assert int((box == 0).sum()) > 0 and int((box == 255).sum()) > int((box == 0).sum())
    assert torch.equal(marked[..., 20:, 20:], images[..., 20:, 20:])


def test_marker_shares_follow_the_spec_per_class(sites):
    for name, normal, pneumonia in (("marker", 1.0, 1.0), ("shortcut source", 0.1, 0.9)):
        site = sites[name]
        labels = site.data.labels
        assert float(site.marked[labels == 0].float().mean()) == pytest.approx(normal, abs=0.05)
        assert float(site.marked[labels == 1].float().mean()) == pytest.approx(pneumonia, abs=0.05)
    assert not sites["source"].marked.any()
    top_edge = sites["marker"].data.images[:, 0, 2, 2:7]  # 32 px: side 5 from 2, white edge
    assert int(top_edge.min()) == 255


def test_marker_mask_counts(pool):
    mask = marker_mask(pool.labels, SiteSpec("m", marker_normal=0.5, marker_pneumonia=0.0))
    normal = pool.labels == 0
    assert int(mask[normal].sum()) == round(0.5 * int(normal.sum()))
    assert not mask[~normal].any()


def test_the_prevalence_site_has_the_share_it_claims(sites):
    site = sites["prevalence"]
    share = float(site.data.labels.float().mean())
    assert share == pytest.approx(0.25, abs=0.03)
    assert dict(site_table(sites)[6]) | {"change": ""} == {
        "site": "prevalence",
        "images": len(site.data),
        "patients": site.data.n_patients(),
        "pneumonia_share": round(share, 3),
        "marked": 0.0,
        "change": "",
    }


def test_prevalence_keeps_every_patient_of_the_scarce_class(pool):
    index = prevalence_index(pool, 0.5, seed=0)
    part = pool.subset(index)
    assert part.class_counts()["NORMAL"] == pool.class_counts()["NORMAL"]
    assert float(part.labels.float().mean()) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match=r"pneumonia_share must be in \(0, 1\)"):
        prevalence_index(pool, 1.0)
    one_class = pool.subset(np.flatnonzero(pool.labels.numpy() == 1))
    with pytest.raises(DataError, match="needs images of both classes"):
        prevalence_index(one_class, 0.5)


def test_make_sites_refuses_duplicates_and_unknown_patients_of(pool):
    with pytest.raises(ValueError, match="site names must be unique"):
        make_sites(pool, [SiteSpec("a"), SiteSpec("a")])
    with pytest.raises(ValueError, match="patients_of='b' is no site"):
        make_sites(pool, [SiteSpec("a"), SiteSpec("c", patients_of="b")])


def test_take_patients_draws_whole_patients_of_each_class(pool):
    taken, rest = take_patients(pool, per_class=3, seed=0)
    assert len(taken) + len(rest) == len(pool)
    assert set(taken.patients).isdisjoint(rest.patients)
    assert taken.n_patients() == 6
    assert set(taken.labels.tolist()) == {0, 1}
    with pytest.raises(DataError, match="asked for 1000 patients of a class that has"):
        take_patients(pool, per_class=1000)


def test_join_keeps_the_order(pool):
    a, b = pool.subset([0, 1]), pool.subset([2])
    joined = join(a, b)
    assert joined.patients == pool.patients[:3]
    assert torch.equal(joined.images, pool.images[:3])


def test_descriptions_name_each_change():
    assert SiteSpec("x", gamma=0.5).describe() == "exposure: gamma 0.5"
    assert SiteSpec("x", resolution=0.25).describe() == (
        "resolution: 25% of the side, resized back up"
    )
    spec = SiteSpec("x", marker_normal=0.1, marker_pneumonia=0.9, patients_of="source")
    assert spec.describe() == (
        "marker on 10% of NORMAL, 90% of PNEUMONIA images; same patients as source"
    )


def test_marked_in_follows_each_image_through_split_target(pool):
    # 08's label x marker table once took each patient's first image (data.patients.index(p)):
    # wrong for a child whose films are not all marked. The truth is in the pixels.
    from medtl_helpers.adaptation import split_target

    site = make_sites(pool, COURSE_SITES, seed=0)["shortcut target"]
    test = split_target(site.name, site.data, 2, seed=0).test
    burned = torch.tensor([torch.equal(burn_marker(x[None]), x[None]) for x in test.images])
    first_image = site.marked[[site.data.patients.index(p) for p in test.patients]]
    assert not torch.equal(first_image, burned)  # the data can tell the two apart
    assert torch.equal(site.marked_in(test), burned)
    assert torch.equal(site.data.subset(site.index_of(test)).images, test.images)
    with pytest.raises(ValueError, match="not images of site 'shortcut target'"):
        site.index_of(make_sites(pool, COURSE_SITES, seed=0)["marker"].data)

"""Issue 19: the 3MF triangle guard counts what trimesh's loader will parse, not members
picked by their name's ending. trimesh (exchange/threemf.py, ``load_3MF``) parses the first
member whose lower-cased name *contains* ``3d/3dmodel.model``, then every member a
``<component p:path=…>`` names, once per reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from fabqueue.analysis.guards import UploadLimits
from tests.analysis.test_mesh_hostile import TETRA_MODEL, analyse, error_codes, model_3mf

LIMIT = UploadLimits(max_triangles=100)
CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
PROD = "http://schemas.microsoft.com/3dmanufacturing/production/2015/06"


def big_model(triangles: int = 5000) -> bytes:
    """A fan of ``triangles`` thin triangles, valid for trimesh."""
    n = triangles + 2
    angles = np.linspace(0, np.pi, n - 1)
    verts = [(0.0, 0.0, 0.0)] + [(10 * np.cos(a), 10 * np.sin(a), 0.0) for a in angles]
    vx = "".join(f'<vertex x="{x:.4f}" y="{y:.4f}" z="{z}"/>' for x, y, z in verts)
    tx = "".join(f'<triangle v1="0" v2="{i}" v3="{i + 1}"/>' for i in range(1, n - 1))
    return (f'<?xml version="1.0" encoding="UTF-8"?><model unit="millimeter" xmlns="{CORE}">'
            f'<resources><object id="1" type="model"><mesh><vertices>{vx}</vertices>'
            f'<triangles>{tx}</triangles></mesh></object></resources>'
            f'<build><item objectid="1"/></build></model>').encode()


def loaded_faces(path: Path) -> int:
    scene = trimesh.load(str(path), file_type="3mf", process=False)
    return sum(len(g.faces) for g in scene.geometry.values())


def test_a_bak_member_trimesh_loads_is_counted(tmp_path: Path) -> None:
    path = model_3mf(tmp_path / "bak.3mf", {"3D/3dmodel.model.bak": big_model()})
    assert loaded_faces(path) == 5000  # what the loader really reads
    assert error_codes(analyse(path, "3mf", limits=LIMIT)) == ["too_many_triangles"]


def test_only_the_member_trimesh_loads_is_counted(tmp_path: Path) -> None:
    """A big decoy the loader never reads does not refuse a small model."""
    path = model_3mf(tmp_path / "decoy.3mf", {"3D/3dmodel.model": TETRA_MODEL,
                                              "Metadata/unused.model": big_model()})
    assert loaded_faces(path) == 4
    report = analyse(path, "3mf", limits=LIMIT)
    assert report["ok"], report["errors"]


def test_a_case_changed_first_member_is_the_one_counted(tmp_path: Path) -> None:
    path = model_3mf(tmp_path / "case.3mf", {"x/3D/3DModel.MODEL": big_model(),
                                             "3D/3dmodel.model": TETRA_MODEL})
    assert loaded_faces(path) == 5000
    assert error_codes(analyse(path, "3mf", limits=LIMIT)) == ["too_many_triangles"]


def test_component_parts_count_once_per_reference(tmp_path: Path) -> None:
    part = big_model(60)
    refs = "".join(f'<component objectid="1" p:path="/3D/part.model" transform="1 0 0 0 1 0 '
                   f'0 0 1 {i * 30} 0 0"/>' for i in range(2))
    root = (f'<?xml version="1.0" encoding="UTF-8"?><model unit="millimeter" '
            f'xmlns="{CORE}" xmlns:p="{PROD}"><resources><object id="2" type="model">'
            f'<components>{refs}</components></object></resources>'
            f'<build><item objectid="2"/></build></model>').encode()
    path = model_3mf(tmp_path / "parts.3mf", {"3D/3dmodel.model": root,
                                              "3D/part.model": part})
    assert loaded_faces(path) == 120  # the part is parsed twice
    assert error_codes(analyse(path, "3mf", limits=LIMIT)) == ["too_many_triangles"]
    report = analyse(path, "3mf", limits=UploadLimits(max_triangles=120))
    assert "too_many_triangles" not in [e["code"] for e in report["errors"]], report

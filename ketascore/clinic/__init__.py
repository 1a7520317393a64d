"""Measurement-based care for ketamine and esketamine clinics.

- ``measures``: named outcome measures (NHS Talking Therapies, CMS159 / MIPS 370, HEDIS
  DRR-E) as data files, evaluated per patient;
- ``sessions``: dosing sessions and the monitoring rules of the esketamine label, as data;
- ``alerts``: safety flags of every scale and session, per patient, newest first;
- ``timeline``: what one patient's page shows (rendered by ``ketascore.present.timeline``).
"""

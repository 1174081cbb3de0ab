"""Playbook tests (``aiosrun test``, DESIGN section 13): cases that run one playbook in a
throwaway copy of the workspace, on a virtual clock, with stand-ins for actions and models."""

"""The C joint firmware in the simulator: building the SIL library (build), the motor board (cboard), the joint
(cjoint), and the ``firmware`` option that chooses Python or C joints (choice)."""

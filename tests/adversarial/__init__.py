"""Attacks and faults, tried as an attacker would, against a real server on loopback.

Each test reproduces one hostile input or injected fault and asserts the outcome the
service promises (a refusal with its status, nothing started, the other call untouched),
so what holds today stays held.
"""

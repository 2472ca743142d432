"""Representation probing (`emobench probe`): does a model *detect* that a situation is emotional, and
can it tell *which* emotion, in its hidden states rather than its answers?

Data flows one way, one module per step:

    battery (emobench.battery) -> extract (hidden states, cached) -> probes (cv + logreg: the linear
    probes, controls and lexical floor; geometry: RSA and directions; stats: the CIs) -> summary ->
    report (probe.json, SVG curves from curves) ; run ties them together for the command.

The method follows "Whether, Not Which" (Keeman, arXiv 2603.22295) on AIPsy-Affect-style batteries
(arXiv 2604.23719), with the controls a reviewer asks for: grouped folds, nested CV, a permutation
null, a control task (Hewitt & Liang 2019), a bag-of-words floor, RSA (Kriegeskorte et al. 2008).
"""

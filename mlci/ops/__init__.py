"""Use cases, one package per stage: plain functions with keyword arguments returning reports.

``data`` (validate, schema infer), ``model`` (train, evaluate, gate, registry), ``deliver`` (build, push,
deploy), ``monitor`` (monitor, alerts), ``jenkins`` (pipelines and the Jenkins commands), ``project``
(init, run, config check) and ``reporting`` (templates and plots every stage renders with).
"""

"""Logger and metrics in a neutral module, so services and handlers share them without importing each other.

Tracer is left out on purpose: aws_xray_sdk adds about 200 ms to every cold start.
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()

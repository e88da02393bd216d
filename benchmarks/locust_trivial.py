"""A Locust user that only hits the sandbox's trivial endpoint, as fast as it can."""

from locust import FastHttpUser, constant, task


class Trivial(FastHttpUser):
    wait_time = constant(0)

    @task
    def ready(self) -> None:
        self.client.get("/__sandbox__/ready")

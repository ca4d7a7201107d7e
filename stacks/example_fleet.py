"""Optional example fleet (exampleFleet.enabled, off by default): a VPC, an ALB, a launch template and an ASG.

For a sandbox account: deploy once with it enabled, then put the `ExampleLaunchTemplateId` and
`ExampleAutoScalingGroupName` outputs into a stage's targets and deploy again (README, "Try it").
Instances sit in public subnets (no NAT gateway to pay for) and accept traffic only from the ALB.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.build_instance_role import ssm_agent_statements
from stacks.checkov import skip
from stacks.config import PipelineConfig
from stacks.lambda_function import retention
from stacks.nag import acknowledge, wildcard_resource

USER_DATA = """#!/bin/bash
set -euo pipefail
dnf -y install nginx
release="$(cat /etc/immutable-ami/release.json 2>/dev/null || echo '{"commit": "not baked by the pipeline yet"}')"
echo "$release" > /usr/share/nginx/html/index.html
systemctl enable --now nginx
"""


class ExampleFleet(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig, topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        app = config.application
        flow_logs = logs.LogGroup(
            self, "FlowLogs", retention=retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)],
            flow_logs={"all": ec2.FlowLogOptions(destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))},
        )
        alb_sg = ec2.SecurityGroup(
            self, "AlbSecurityGroup", vpc=self.vpc, description="Example ALB: HTTP from anywhere"
        )
        alb_sg.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(80), "HTTP from anywhere")
        instance_sg = ec2.SecurityGroup(
            self, "InstanceSecurityGroup", vpc=self.vpc, description="Example fleet: from the ALB"
        )
        instance_sg.add_ingress_rule(alb_sg, ec2.Port.tcp(80), "HTTP from the ALB only")
        # Session Manager access without AmazonSSMManagedInstanceCore's account-wide ssm:GetParameter(s): the
        # agent's own statements only, as the build instances have them (stacks/image_builder.py).
        role = iam.Role(self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
        for statement in ssm_agent_statements():
            role.add_to_policy(statement)
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            launch_template_name=f"{app}-example",
            machine_image=ec2.MachineImage.latest_amazon_linux2023(),
            instance_type=ec2.InstanceType(config.example_fleet.instance_type),
            security_group=instance_sg,
            role=role,
            require_imdsv2=True,
            associate_public_ip_address=True,
            user_data=ec2.UserData.custom(USER_DATA),
            block_devices=[
                ec2.BlockDevice(device_name="/dev/xvda", volume=ec2.BlockDeviceVolume.ebs(8, encrypted=True))
            ],
        )
        self.group = autoscaling.AutoScalingGroup(
            self,
            "Group",
            auto_scaling_group_name=f"{app}-example",
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            launch_template=self.launch_template,
            min_capacity=config.example_fleet.desired_capacity,
            max_capacity=config.example_fleet.desired_capacity * 2,
            health_checks=autoscaling.HealthChecks.with_additional_checks(
                additional_types=[autoscaling.AdditionalHealthCheckType.ELB], grace_period=Duration.minutes(5)
            ),
            notifications=[autoscaling.NotificationConfiguration(topic=topic)],
        )
        alb = elbv2.ApplicationLoadBalancer(
            self, "Alb", vpc=self.vpc, internet_facing=True, security_group=alb_sg, drop_invalid_header_fields=True
        )
        listener = alb.add_listener("Http", port=80, open=False)
        listener.add_targets(
            "Fleet",
            port=80,
            targets=[self.group],
            health_check=elbv2.HealthCheck(path="/", healthy_threshold_count=2, interval=Duration.seconds(15)),
            deregistration_delay=Duration.seconds(30),
        )
        acknowledge(alb_sg, "The example ALB serves a public demo page on port 80", "AwsSolutions-EC23")
        acknowledge(alb, "A sandbox example; enable access logs for a real fleet", "AwsSolutions-ELB2")
        acknowledge(
            role,
            "The SSM agent's registration, Run Command and session actions act on the calling instance itself",
            wildcard_resource("*"),
        )
        skip(
            role.node.find_child("DefaultPolicy"),
            "The SSM agent's own calls (UpdateInstanceInformation, ssmmessages, ec2messages) have no resource types",
            "CKV_AWS_111",
        )
        demo = "The optional sandbox example serves a public demo page over plain HTTP; a real fleet brings its own"
        skip(alb_sg, demo, "CKV_AWS_260")
        skip(listener, demo, "CKV_AWS_2", "CKV_AWS_103")
        skip(
            alb,
            "A sandbox example with no logs bucket; enable access logs on a real fleet's load balancer",
            "CKV_AWS_91",
        )
        skip(
            self.launch_template,
            "Example instances sit in public subnets (no NAT gateway to pay for); only the ALB may reach them",
            "CKV_AWS_88",
        )
        skip(
            flow_logs, "CloudWatch Logs encrypts log data at rest by default; flow logs of a sandbox VPC", "CKV_AWS_158"
        )
        CfnOutput(self, "ExampleLaunchTemplateId", value=self.launch_template.launch_template_id or "")
        CfnOutput(self, "ExampleAutoScalingGroupName", value=self.group.auto_scaling_group_name)
        CfnOutput(self, "ExampleUrl", value=f"http://{alb.load_balancer_dns_name}/")

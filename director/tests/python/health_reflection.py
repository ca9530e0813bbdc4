#!/usr/bin/env python3
"""An independent gRPC client for the director's standard services, on grpcio from PyPI:
what grpcurl and grpc_health_probe do, written against the protocols, not against lb's code.

    health_reflection.py TARGET [--ca CA --cert CERT --key KEY --server-name NAME] MODE

TARGET is host:port or unix:/path/to/admin.sock. Modes:
  probe --expect STATUS   reflection v1 and v1alpha list the services; lb.v1.Admin is resolved
                          from reflection alone and its Status called (as grpcurl does); Check
                          of "", lb.v1.Registry and lb.v1.Admin answers STATUS; an unknown
                          name is NOT_FOUND
  check --expect STATUS   only the Check calls
  watch                   Watch(""): one line per status received ("status SERVING"), then
                          "ended OK" (or the error's code) when the server ends the stream

Exit 0 when every expectation held; 1 with a line saying what did not.
"""

import argparse
import sys

import grpc
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

OUR_SERVICES = ["lb.v1.Registry", "lb.v1.Admin"]
WANTED_IN_LISTING = OUR_SERVICES + ["grpc.health.v1.Health"]
DEADLINE = 30  # seconds per call: generous, the machine may be loaded


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def channel(args):
    # A proxy from the environment must never see loopback test traffic.
    options = [("grpc.enable_http_proxy", 0)]
    if args.target.startswith("unix:"):
        # grpc-core (1.57 on) sends the %-encoded socket path as :authority, which is no valid
        # authority: the director's HTTP/2 stack (h2) resets such streams. Go clients
        # (grpcurl, grpc_health_probe) send "localhost", as we do here.
        options.append(("grpc.default_authority", "localhost"))
    if args.ca is None:
        return grpc.insecure_channel(args.target, options=options)
    read = lambda path: open(path, "rb").read()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key) if args.key else None,
        certificate_chain=read(args.cert) if args.cert else None,
    )
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    return grpc.secure_channel(args.target, credentials, options=options)


def list_services(chan, version):
    """ListServices over reflection `version` ("v1" or "v1alpha"). v1 has the same messages
    as v1alpha under another package, so the v1alpha classes encode it on the wire."""
    method = f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
    call = chan.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = list(call(iter([request]), timeout=DEADLINE))
    if len(responses) != 1 or not responses[0].HasField("list_services_response"):
        fail(f"reflection {version}: unexpected answer {responses!r}")
    return [s.name for s in responses[0].list_services_response.service]


def call_status_by_reflection(chan):
    """Resolves lb.v1.Admin from reflection only and calls Status with an empty request."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(chan))
    service = pool.FindServiceByName("lb.v1.Admin")
    method = service.FindMethodByName("Status")
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = chan.unary_unary(
        f"/{service.full_name}/{method.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    response = call(request_class(), timeout=DEADLINE)
    fields = [f.name for f, _ in response.ListFields()]
    print(f"lb.v1.Admin/Status by reflection: fields {fields}", flush=True)


def check(chan, expect):
    stub = health_pb2_grpc.HealthStub(chan)
    for name in [""] + OUR_SERVICES:
        answer = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=DEADLINE)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        print(f"check {name or '(whole director)'}: {status}", flush=True)
        if status != expect:
            fail(f"Check({name!r}) is {status}, expected {expect}")
    try:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=DEADLINE)
        fail("Check of an unknown service answered instead of NOT_FOUND")
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            fail(f"Check of an unknown service: {error.code()} instead of NOT_FOUND")


def probe(chan, expect):
    for version in ["v1", "v1alpha"]:
        names = list_services(chan, version)
        print(f"reflection {version}: {' '.join(sorted(names))}", flush=True)
        missing = [n for n in WANTED_IN_LISTING if n not in names]
        if missing:
            fail(f"reflection {version} does not list {missing}")
    call_status_by_reflection(chan)
    check(chan, expect)


def watch(chan):
    stub = health_pb2_grpc.HealthStub(chan)
    # No deadline: the test ends the stream by stopping the director.
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    try:
        for answer in stream:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            print(f"status {status}", flush=True)
        print("ended OK", flush=True)
    except grpc.RpcError as error:
        print(f"ended {error.code().name}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--server-name")
    parser.add_argument("mode", choices=["probe", "check", "watch"])
    parser.add_argument("--expect", choices=["SERVING", "NOT_SERVING"])
    args = parser.parse_args()
    if args.mode != "watch" and args.expect is None:
        parser.error(f"{args.mode} needs --expect")
    chan = channel(args)
    try:
        if args.mode == "probe":
            probe(chan, args.expect)
        elif args.mode == "check":
            check(chan, args.expect)
        else:
            watch(chan)
    except grpc.RpcError as error:
        fail(f"{error.code().name}: {error.details()}")
    print("ok", flush=True)


if __name__ == "__main__":
    main()

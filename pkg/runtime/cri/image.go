package cri

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/runtime/images"
)

func criImage(img images.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{Id: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests, Size: uint64(img.Size), Spec: &runtimeapi.ImageSpec{Image: img.ID}}
	user, _, _ := strings.Cut(img.Config.User, ":")
	if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
		out.Uid = &runtimeapi.Int64Value{Value: uid}
	} else {
		out.Username = user
	}
	return out
}

// ListImages implements ImageServiceServer.
func (s *Service) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	imgs, err := s.cfg.Images.List()
	if err != nil {
		return nil, err
	}
	want := req.GetFilter().GetImage().GetImage()
	var out []*runtimeapi.Image
	for _, img := range imgs {
		if want != "" {
			if got, err := s.cfg.Images.Get(want); err != nil || got.ID != img.ID {
				continue
			}
		}
		out = append(out, criImage(img))
	}
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}

// ImageStatus implements ImageServiceServer; a missing image is not an
// error but an empty answer.
func (s *Service) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	img, err := s.cfg.Images.Get(req.GetImage().GetImage())
	if errors.Is(err, images.ErrNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ImageStatusResponse{Image: criImage(img)}, nil
}

// PullImage implements ImageServiceServer.
func (s *Service) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	var auth authn.Authenticator
	if a := req.GetAuth(); a != nil {
		auth = authn.FromConfig(authn.AuthConfig{Username: a.GetUsername(), Password: a.GetPassword(), Auth: a.GetAuth(), IdentityToken: a.GetIdentityToken(), RegistryToken: a.GetRegistryToken()})
	}
	img, err := s.cfg.Images.Pull(ctx, req.GetImage().GetImage(), images.PullOptions{Auth: auth})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PullImageResponse{ImageRef: img.ID}, nil
}

// RemoveImage implements ImageServiceServer; removing a missing image
// succeeds.
func (s *Service) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	if _, err := s.cfg.Images.Remove(req.GetImage().GetImage()); err != nil && !errors.Is(err, images.ErrNotFound) {
		return nil, err
	}
	s.mu.Lock()
	inUse := map[string]bool{}
	for _, c := range s.containers {
		if img, err := s.cfg.Images.Get(c.ImageID); err == nil {
			for _, l := range img.Layers {
				inUse[l] = true
			}
		}
	}
	s.mu.Unlock()
	_, err := s.cfg.Images.PruneLayers(inUse)
	return &runtimeapi.RemoveImageResponse{}, err
}

// ImageFsInfo implements ImageServiceServer.
func (s *Service) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	imgs, err := s.cfg.Images.List()
	if err != nil {
		return nil, err
	}
	var used uint64
	for _, img := range imgs {
		used += uint64(img.Size)
	}
	fs := &runtimeapi.FilesystemUsage{
		Timestamp:  s.now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: filepath.Join(s.cfg.Root, "..")},
		UsedBytes:  &runtimeapi.UInt64Value{Value: used},
		InodesUsed: &runtimeapi.UInt64Value{},
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{fs}}, nil
}

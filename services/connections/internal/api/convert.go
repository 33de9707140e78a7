package api

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"

	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// timeOrNil is t, or nil for the zero time (never happened).
func timeOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func toProto(c *store.Connection) *connectionsv1.Connection {
	p := &connectionsv1.Connection{
		Id:                 c.ID,
		WorkspaceId:        c.WorkspaceID,
		ProjectId:          c.ProjectID,
		Name:               c.Name,
		Connector:          c.Connector,
		Environment:        environments.of(c.Environment),
		AuthType:           authTypes.of(c.AuthType),
		Instance:           c.Instance.Proto(),
		Status:             statuses.of(c.Status),
		StatusReason:       reasons.of(c.StatusReason),
		LastError:          c.LastError,
		AuthorizedAs:       c.AuthorizedAs,
		GrantedScopes:      c.GrantedScopes,
		Owner:              c.Owner,
		CreateTime:         timestamppb.New(c.CreateTime),
		UpdateTime:         timestamppb.New(c.UpdateTime),
		Etag:               strconv.FormatInt(c.Version, 10),
		ParentConnectionId: c.ParentConnectionID,
		RuntimeUser:        c.RuntimeUser,
		SecretGeneration:   c.SecretGeneration,
	}
	p.LastVerifyTime = timeOrNil(c.LastVerifyTime)
	p.LastUseTime, p.LastRefreshTime, p.TokenExpireTime = timeOrNil(c.Activity.LastUse), timeOrNil(c.Activity.LastRefresh),
		timeOrNil(c.Activity.TokenExpiry)
	return p
}

func connectorToProto(c *catalog.Connector) *connectionsv1.Connector {
	p := &connectionsv1.Connector{
		Name:                      c.Name,
		DisplayName:               c.DisplayName,
		Description:               c.Description,
		AuthTypes:                 c.AuthTypes(),
		AllowsSecondaryConnection: c.AllowsSecondary,
		DefaultBaseUrl:            c.DefaultBaseURL,
	}
	for _, ip := range c.InstanceParameters {
		p.InstanceParameters = append(p.InstanceParameters, &connectionsv1.InstanceParameter{
			Name: ip.Name, Description: ip.Description, Required: ip.Required,
		})
	}
	return p
}
